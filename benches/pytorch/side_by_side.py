#!/usr/bin/env python3
"""Run the gradscope speed workloads in PyTorch and in gradscope, side by side, and print ratios.

    pip install torch            # any recent CPU build; docs/performance.md names the one measured
    python3 benches/pytorch/side_by_side.py                  # every workload
    python3 benches/pytorch/side_by_side.py gpt_nanogpt copy_t100_lstm --steps 10
    python3 benches/pytorch/side_by_side.py gpt_ctx256 gpt_nanogpt --rounds 5   # median of 5 pairs

Each workload runs in a fresh process on each side (so peak RSS is the workload's own), after
warm-up steps, and the median s/step of the timed steps is reported. gradscope's side is
`cargo run --release --example step_time -- WORKLOAD` (same workloads as `cargo bench --bench
recurrent` and `--bench gpt`); PyTorch's side is this file with `--torch-only WORKLOAD`. The two
sides alternate workload by workload, so a change in machine load hits both.

A step is forward + loss + backward + optimiser update (Adam for the recurrent nets, AdamW for
the GPT), f32, the thread count each library picks by default unless --threads is given.

Subnormal floats: by default each library does what it does by default (PyTorch keeps them,
gradscope's recurrent kernels flush them to zero). BPTT over T = 1000 makes half the backward
pass's gradients subnormal, which Intel CPUs handle in microcode, so on those the adding
workloads' ratios depend on this; `--denormals flush` (torch.set_flush_denormal(True) and
gradscope's default) or `--denormals keep` (GRADSCOPE_DENORMALS=keep) puts both on one footing.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

RECURRENT = {
    # name: (task, cell, forward_only)
    "adding_t1000_lstm": ("adding", "lstm", False),
    "adding_t1000_gru": ("adding", "gru", False),
    "adding_t1000_rnn_tanh": ("adding", "rnn_tanh", False),
    "copy_t100_lstm": ("copy", "lstm", False),
    "copy_t100_gru": ("copy", "gru", False),
    "copy_t100_rnn_tanh": ("copy", "rnn_tanh", False),
    "adding_t1000_lstm_forward": ("adding", "lstm", True),
    "adding_t1000_mingru": ("adding", "mingru", False),
    "adding_t1000_minlstm": ("adding", "minlstm", False),
    "adding_t1000_lru": ("adding", "lru", False),
    "adding_t1000_mamba": ("adding", "mamba", False),
}
# Cells PyTorch has no module for, written from their papers' equations in two forms: a loop over
# time and the log-space parallel scan; the faster of the two is PyTorch's figure.
MIN_CELLS = {"mingru": 2, "minlstm": 3}
# Likewise the LRU block (tests/fixtures/make_lru.py), as a loop over time or in chunks of this
# many steps, each chunk a product with the powers of lambda (a whole-sequence closed form would
# need lambda^-T, which overflows f32 at T = 1000).
LRU_CHUNK = 64
# And one pre-norm Mamba block (tests/fixtures/make_mamba.py) with mamba_ssm's defaults: expand 2,
# state 16, conv width 4, dt_rank ceil(H/16). Its selective scan runs as selective_scan_ref's loop
# over time, or chunked: each chunk's states from zero, all chunks at once (a loop over the chunk's
# steps), then the chunks' carries (a loop over chunks), entered through exp of the cumulative
# log-decay inside the chunk (never positive, so nothing overflows). The masked (t, s) form inside a
# chunk would hold chunk-length times the (B, T, E, N) states, a GB each here.
MAMBA_EXPAND, MAMBA_STATE, MAMBA_CONV = 2, 16, 4
MAMBA_CHUNK = 40
SCANNED = set(MIN_CELLS) | {"lru", "mamba"}
GPT = {
    # name: (n_layer, n_embd, n_head, context, batch, vocab)
    "gpt_ctx256": (4, 128, 4, 256, 32, 65),
    "gpt_nanogpt": (4, 128, 4, 64, 12, 65),
}
WORKLOADS = list(RECURRENT) + list(GPT)
# Issue targets: gradscope must be at least this many times faster than PyTorch.
TARGETS = {
    "adding_t1000_lstm": 2.0, "adding_t1000_gru": 3.0, "adding_t1000_rnn_tanh": 3.0,
    "copy_t100_lstm": 2.0, "copy_t100_gru": 3.0, "copy_t100_rnn_tanh": 3.0,
    "adding_t1000_lstm_forward": 1.5, "gpt_ctx256": 1.0, "gpt_nanogpt": 1.0,
    "adding_t1000_mingru": 3.0, "adding_t1000_minlstm": 3.0, "adding_t1000_lru": 3.0,
    "adding_t1000_mamba": 3.0,
}
B, H = 64, 128


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def min_cell(cell, features, form):
    """minGRU / minLSTM (Feng et al. 2024) as in tests/fixtures/make_min_cells.py: a Linear map of
    x_t to the gate blocks, then h_t = a_t * h_{t-1} + b_t from h_0 = 0, run as a Python loop over
    time (`sequential`) or as the log-space parallel scan (`scan`). Returns (module, forward)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    lin = nn.Linear(features, MIN_CELLS[cell] * H)

    def log_g(v):
        return torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))

    def g(v):
        return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))

    def forward(x):
        parts = lin(x).split(H, dim=-1)
        if form == "sequential":
            if cell == "mingru":
                z = torch.sigmoid(parts[0])
                a, b = 1 - z, z * g(parts[1])
            else:
                f, i = torch.sigmoid(parts[0]), torch.sigmoid(parts[1])
                a, b = f / (f + i), i / (f + i) * g(parts[2])
            h, outs = torch.zeros(x.shape[0], H), []
            for t in range(x.shape[1]):
                h = a[:, t] * h + b[:, t]
                outs.append(h)
            return torch.stack(outs, 1)
        if cell == "mingru":
            log_a, log_b = -F.softplus(parts[0]), -F.softplus(-parts[0]) + log_g(parts[1])
        else:
            log_f, log_i = -F.softplus(-parts[0]), -F.softplus(-parts[1])
            log_a = -F.softplus(log_i - log_f)
            log_b = -F.softplus(log_f - log_i) + log_g(parts[2])
        a_star = log_a.cumsum(1)
        return (a_star + (log_b - a_star).logcumsumexp(1)).exp()

    return lin, forward


def lru_block(features, form):
    """Encoder + one pre-norm LRU block (N = H), gradscope's `--model lru` with the paper's init."""
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Lru(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.norm = nn.Linear(features, H), nn.LayerNorm(H)
            u = torch.rand(H) * (0.999**2 - 0.9**2) + 0.9**2
            self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(u)))
            self.theta_log = nn.Parameter(torch.log(2 * math.pi * torch.rand(H)))
            self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - u)))
            self.b_re, self.b_im = (nn.Parameter(torch.randn(H, H) / math.sqrt(2 * H)) for _ in range(2))
            self.c_re, self.c_im = (nn.Parameter(torch.randn(H, H) / math.sqrt(H)) for _ in range(2))
            self.d = nn.Parameter(torch.randn(H))
            self.out1, self.out2 = nn.Linear(H, H), nn.Linear(H, H)

        def forward(self, x):
            x = self.encoder(x)
            z = self.norm(x)
            lam = torch.polar(torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log))
            v = torch.complex(z @ self.b_re.T, z @ self.b_im.T) * torch.exp(self.gamma_log)
            if form == "sequential":
                s, states = torch.zeros(x.shape[0], H, dtype=v.dtype), []
                for t in range(x.shape[1]):
                    s = lam * s + v[:, t]
                    states.append(s)
                s = torch.stack(states, 1)
            else:
                c = LRU_CHUNK
                steps = torch.arange(c)
                powers = lam[None, None, :] ** (steps[:, None] - steps[None, :]).clamp(min=0)[..., None]
                powers = powers * (steps[:, None] >= steps[None, :])[..., None]  # (C, C, N)
                carry = lam[None, :] ** (steps + 1)[:, None]  # (C, N): lambda^(t+1)
                s, chunks = torch.zeros(x.shape[0], H, dtype=v.dtype), []
                for v_c in v.split(c, dim=1):
                    k = v_c.shape[1]
                    chunk = torch.einsum("tkn,bkn->btn", powers[:k, :k], v_c) + carry[:k] * s[:, None]
                    chunks.append(chunk)
                    s = chunk[:, -1]
                s = torch.cat(chunks, 1)
            y = F.gelu(s.real @ self.c_re.T - s.imag @ self.c_im.T + z * self.d)
            return x + self.out1(y) * torch.sigmoid(self.out2(y))

    module = Lru()
    return module, module


def mamba_ssm_scan(dt, a, u, b, c, form, chunk=MAMBA_CHUNK):
    """y_t = sum_n h_t[:, :, n] C_t[n] of h_t = exp(dt_t A) * h_{t-1} + (dt_t * u_t) B_t, h_{-1} = 0.
    dt, u (B, T, E); a = A (E, N); b, c (B, T, N). Time-major (B, T, E, N) so a step's slice is
    contiguous, and unbind (one backward node) rather than indexing in the loop, whose backward
    writes a full-size zero tensor per step."""
    import torch
    import torch.nn.functional as F

    if form == "sequential":  # selective_scan_ref: deltaA and deltaB_u up front, then a loop over time
        delta_a = torch.exp(torch.einsum("bte,en->bten", dt, a))
        delta_b_u = torch.einsum("bte,btn,bte->bten", dt, b, u)
        h, ys = dt.new_zeros(dt.shape[0], *a.shape), []
        for da_t, dbu_t, c_t in zip(delta_a.unbind(1), delta_b_u.unbind(1), c.unbind(1)):
            h = da_t * h + dbu_t
            ys.append(torch.einsum("ben,bn->be", h, c_t))
        return torch.stack(ys, 1)
    batch, steps = dt.shape[:2]
    pad = -steps % chunk  # padded steps: dt = 0 (decay 1, no input), C = 0
    dt, u, b, c = (F.pad(v, (0, 0, 0, pad)) for v in (dt, u, b, c))
    n_chunks = dt.shape[1] // chunk
    log_a = torch.einsum("bte,en->bten", dt, a).reshape(batch, n_chunks, chunk, *a.shape)
    b_u = torch.einsum("bte,btn,bte->bten", dt, b, u).reshape(log_a.shape)
    c = c.reshape(batch, n_chunks, chunk, -1)
    # 1. every chunk from a zero state, all chunks at once
    h, ys = dt.new_zeros(batch, n_chunks, *a.shape), []
    for da_i, bu_i, c_i in zip(torch.exp(log_a).unbind(2), b_u.unbind(2), c.unbind(2)):
        h = da_i * h + bu_i
        ys.append(torch.einsum("bken,bkn->bke", h, c_i))
    y = torch.stack(ys, 2)  # (B, chunks, L, E)
    # 2. the state entering each chunk: a loop over chunks with each chunk's whole decay
    cum = log_a.cumsum(2)  # cumulative log-decay inside the chunk, <= 0
    carry, starts = dt.new_zeros(batch, *a.shape), []
    for decay_k, end_k in zip(torch.exp(cum[:, :, -1]).unbind(1), h.unbind(1)):
        starts.append(carry)
        carry = decay_k * carry + end_k
    # 3. h_t = local h_t + exp(S_t) * entering state; its part of y
    y = y + torch.einsum("bklen,bken,bkln->bkle", torch.exp(cum), torch.stack(starts, 1), c)
    return y.reshape(batch, n_chunks * chunk, -1)[:, :steps]


def check_mamba_scan():
    """The chunked form equals the sequential one, outputs and gradients, in float64 (1e-10)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(5)
    f64 = dict(dtype=torch.float64)
    batch, steps, inner, state = 2, 37, 6, 4  # 37 steps: chunks of 8 with a padded last one
    leaves = [F.softplus(torch.randn(batch, steps, inner, generator=gen, **f64)),
              -torch.arange(1, state + 1, **f64).repeat(inner, 1)
              * torch.exp(0.1 * torch.randn(inner, state, generator=gen, **f64)),
              torch.randn(batch, steps, inner, generator=gen, **f64),
              torch.randn(batch, steps, state, generator=gen, **f64),
              torch.randn(batch, steps, state, generator=gen, **f64)]
    weights = torch.randn(batch, steps, inner, generator=gen, **f64)
    results = []
    for form in ("sequential", "chunked"):
        vs = [v.clone().requires_grad_() for v in leaves]
        y = mamba_ssm_scan(*vs, form, chunk=8)
        (y * weights).sum().backward()
        results.append([y] + [v.grad for v in vs])
    for one, other in zip(*results):
        assert torch.allclose(one, other, rtol=1e-10, atol=1e-12), (one - other).abs().max()


def mamba_block(features, form):
    """Encoder + one pre-norm Mamba block, gradscope's `--model mamba`, mamba_ssm's initialisation
    (mamba_ssm/modules/mamba_simple.py `Mamba.__init__`; with one layer its out_proj rescaling by
    1/sqrt(n_layer) in mixer_seq_simple.py `_init_weights` changes nothing)."""
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    inner, state, width = MAMBA_EXPAND * H, MAMBA_STATE, MAMBA_CONV
    rank = math.ceil(H / 16)

    class Mamba(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.norm = nn.Linear(features, H), nn.LayerNorm(H)
            self.in_proj = nn.Linear(H, 2 * inner, bias=False)
            self.conv1d = nn.Conv1d(inner, inner, width, groups=inner, padding=width - 1)
            self.x_proj = nn.Linear(inner, rank + 2 * state, bias=False)
            self.dt_proj = nn.Linear(rank, inner)
            nn.init.uniform_(self.dt_proj.weight, -rank**-0.5, rank**-0.5)
            dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            with torch.no_grad():
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            self.A_log = nn.Parameter(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).repeat(inner, 1))
            self.D = nn.Parameter(torch.ones(inner))
            self.out_proj = nn.Linear(inner, H, bias=False)

        def forward(self, x):
            x = self.encoder(x)
            xc, g = self.in_proj(self.norm(x)).chunk(2, dim=-1)
            u = F.silu(self.conv1d(xc.transpose(1, 2))[..., :x.shape[1]].transpose(1, 2))
            dt, b, c = self.x_proj(u).split([rank, state, state], dim=-1)
            dt = F.softplus(self.dt_proj(dt))
            y = mamba_ssm_scan(dt, -torch.exp(self.A_log), u, b, c, form) + self.D * u
            return x + self.out_proj(y * F.silu(g))

    check_mamba_scan()
    module = Mamba()
    return module, module


def torch_workload(name, form="sequential"):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    if name in RECURRENT:
        task, cell, forward_only = RECURRENT[name]
        if task == "adding":
            t, features, classes = 1000, 2, 1
            x = torch.stack([torch.rand(B, t), torch.zeros(B, t)], dim=2)
            x[:, 0, 1] = 1.0
            x[:, t // 2, 1] = 1.0
            y = (x[:, 0, 0] + x[:, t // 2, 0]).unsqueeze(1)
        else:  # copy memory: 10 symbols (alphabet 8), T = 100 blanks, one-hot 10 -> 9 classes
            t_blank, k, alphabet = 100, 10, 8
            total = t_blank + 2 * k
            features, classes = alphabet + 2, alphabet + 1
            symbols = torch.randint(0, alphabet, (B, k))
            ids = torch.full((B, total), alphabet, dtype=torch.long)
            ids[:, :k] = symbols
            ids[:, t_blank + k - 1] = alphabet + 1
            x = F.one_hot(ids, features).float()
            y = torch.full((B, total), alphabet, dtype=torch.long)
            y[:, -k:] = symbols
        if cell in SCANNED:
            block = {"lru": lru_block, "mamba": mamba_block}
            module, forward = min_cell(cell, features, form) if cell in MIN_CELLS else block[cell](features, form)

            def rnn(inputs):
                return forward(inputs), None
        else:
            rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}[cell]
            module = rnn = rnn_cls(features, H, batch_first=True)
        head = nn.Linear(H, classes)
        params = list(module.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)

        def step():
            if forward_only:
                with torch.no_grad():
                    out, _ = rnn(x)
                    head(out[:, -1])
                return
            out, _ = rnn(x)
            if task == "adding":
                loss = F.mse_loss(head(out[:, -1]), y)
            else:
                loss = F.cross_entropy(head(out).reshape(-1, classes), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        flops = recurrent_flops(task, cell, forward_only)
        return step, flops

    n_layer, c, n_head, ctx, batch, vocab = GPT[name]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
            self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
            self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
            q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class Gpt(nn.Module):  # nanoGPT's model.py with biases, untied head (gradscope's layout)
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(ctx, c)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f, self.lm_head = nn.LayerNorm(c), nn.Linear(c, vocab, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    model = Gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx = torch.randint(0, vocab, (batch, ctx))
    targets = torch.randint(0, vocab, (batch, ctx))

    def step():
        logits = model(idx)
        loss = F.cross_entropy(logits.view(-1, vocab), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, gpt_flops(name)


def recurrent_flops(task, cell, forward_only):
    """GEMM FLOPs of one step: 2·m·n·k per product; the backward pass costs twice the forward.
    Mamba adds its selective scan, about 9·E·N per row and step forward (exp(dt A), dt·u·B, the
    update's multiply-add, y's C-contraction)."""
    if task == "adding":
        t, features, out_steps, classes = 1000, 2, 1, 1
    else:
        t, features, out_steps, classes = 120, 10, 120, 9
    scan = 0
    if cell == "lru":  # encoder, B and C (real and imaginary), the GLU's two maps; N = H
        per_row = features * H + 6 * H * H
    elif cell == "mamba":  # encoder, in_proj H -> 2E, x_proj E -> R + 2N, dt_proj R -> E, out_proj E -> H
        inner, state, rank = MAMBA_EXPAND * H, MAMBA_STATE, -(-H // 16)
        per_row = features * H + H * 2 * inner + inner * (rank + 2 * state) + rank * inner + inner * H
        scan = 9 * inner * state
    else:
        gates = {"lstm": 4, "gru": 3, "rnn_tanh": 1, **MIN_CELLS}[cell]
        per_row = gates * H * (features + (0 if cell in MIN_CELLS else H))
    forward = 2 * B * t * per_row + B * t * scan + 2 * B * out_steps * H * classes
    return forward if forward_only else 3 * forward


def gpt_flops(name):
    """nanoGPT's estimate: 6·N per token for the weight matrices + 12·L·C·T per token for attention."""
    n_layer, c, _, ctx, batch, vocab = GPT[name]
    n_matmul = n_layer * 12 * c * c + vocab * c
    return (6 * n_matmul + 12 * n_layer * c * ctx) * batch * ctx


def run_torch(name, steps, warmup, threads, flush_denormals=False):
    import torch

    if threads:
        torch.set_num_threads(threads)
    if flush_denormals and not torch.set_flush_denormal(True):
        sys.exit("torch.set_flush_denormal(True) is not supported on this CPU")
    cell = RECURRENT.get(name, (None, None))[1]
    forms = ["sequential", "chunked" if cell == "mamba" else "scan"] if cell in SCANNED else ["sequential"]
    timed = {}
    for form in forms:
        step, flops = torch_workload(name, form)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        timed[form] = times
    form = min(timed, key=lambda f: statistics.median(timed[f]))
    times = timed[form]
    return {"workload": name, "median_s": statistics.median(times), "min_s": min(times),
            "steps": steps, "flops": flops, "peak_rss_mb": peak_rss_mb(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "flush_denormals": flush_denormals, "form": form,
            "forms_median_s": {f: statistics.median(t) for f, t in timed.items()}}


def torch_gemm_rate(threads, n=1024, reps=10):
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def subprocess_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workloads", nargs="*", default=WORKLOADS, help=f"any of {', '.join(WORKLOADS)}")
    p.add_argument("--steps", type=int, default=10, help="timed steps per workload (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--threads", type=int, default=0, help="threads for both sides (0: library default)")
    p.add_argument("--torch-only", metavar="WORKLOAD", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate the two sides this many times per workload and report the median "
                        "of the rounds' ratios (default 1); on a VM whose speed drifts by 10-30%% "
                        "between minutes, pairing adjacent runs is what makes a ratio repeatable")
    p.add_argument("--denormals", choices=["default", "flush", "keep"], default="default",
                   help="subnormal floats: each library's default (PyTorch keeps them, gradscope "
                        "flushes them), or both flush, or both keep (default: default)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args()
    if args.torch_only:
        flush = args.denormals == "flush"
        print(json.dumps(run_torch(args.torch_only, args.steps, args.warmup, args.threads, flush)))
        return
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["cargo", "build", "--release", "--example", "step_time"], cwd=repo, check=True)
    env = dict(os.environ)
    if args.threads:
        env["RAYON_NUM_THREADS"] = str(args.threads)
    if args.denormals == "keep":
        env["GRADSCOPE_DENORMALS"] = "keep"
    else:
        env.pop("GRADSCOPE_DENORMALS", None)
    gs_cmd = ["cargo", "run", "--quiet", "--release", "--example", "step_time", "--"]
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    gemm = subprocess_json(gs_cmd + ["--gemm-rate"], env)
    torch_gemm = torch_gemm_rate(args.threads)
    print(f"large-GEMM rate (1024³ f32): gradscope {gemm['gflops']:.1f} GFLOP/s, PyTorch {torch_gemm:.1f} GFLOP/s")
    print(f"subnormals: {args.denormals}" + (" (PyTorch keeps them, gradscope flushes them)"
                                             if args.denormals == "default" else ""))
    rows = []
    header = f"{'workload':28} {'PyTorch s/step':>14} {'gradscope':>10} {'ratio':>6} {'target':>6}  " \
             f"{'GFLOP/s (% GEMM)':>17} {'RSS PyT/gs MB':>14}"
    print(header)
    for name in args.workloads:
        pairs = []
        for _ in range(max(1, args.rounds)):
            torch_run = subprocess_json([sys.executable, __file__, "--torch-only", name] + common
                                        + ["--threads", str(args.threads), "--denormals", args.denormals])
            gs_run = subprocess_json(gs_cmd + [name] + common, env)
            pairs.append((torch_run, gs_run))
        ratio = statistics.median(t["median_s"] / g["median_s"] for t, g in pairs)
        # The round whose ratio is the median one (the lower middle for an even count) stands for
        # the workload; every round is kept in the JSON.
        torch_row, gs_row = sorted(pairs, key=lambda p: p[0]["median_s"] / p[1]["median_s"])[(len(pairs) - 1) // 2]
        for key in ("peak_rss_mb",):
            torch_row = dict(torch_row, **{key: max(t[key] for t, _ in pairs)})
            gs_row = dict(gs_row, **{key: max(g[key] for _, g in pairs)})
        gflops = gs_row["flops"] / gs_row["median_s"] / 1e9
        row = {"workload": name, "pytorch": torch_row, "gradscope": gs_row, "ratio": ratio,
               "target": TARGETS[name], "gradscope_gflops": gflops,
               "gemm_fraction": gflops / gemm["gflops"],
               "rounds": [{"pytorch_s": t["median_s"], "gradscope_s": g["median_s"]} for t, g in pairs]}
        rows.append(row)
        mark = "ok" if ratio >= TARGETS[name] else "MISS"
        print(f"{name:28} {torch_row['median_s']:14.4f} {gs_row['median_s']:10.4f} {ratio:5.2f}× "
              f"{TARGETS[name]:5.1f}× {gflops:7.1f} ({100 * row['gemm_fraction']:3.0f} %) "
              f"{torch_row['peak_rss_mb']:6.0f}/{gs_row['peak_rss_mb']:<6.0f} {mark}", flush=True)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"gemm_gflops": {"gradscope": gemm["gflops"], "pytorch": torch_gemm},
                       "denormals": args.denormals, "rows": rows}, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
