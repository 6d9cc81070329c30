#!/usr/bin/env sh
# Downloads Karpathy's tiny Shakespeare into data/ and checks it (the same as
# `gradscope data tinyshakespeare`). Corpora are never committed: data/*.txt is git-ignored.
set -eu
cd "$(dirname "$0")"
url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
sha=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
curl --fail --location --silent --show-error "$url" -o tinyshakespeare.txt.tmp
echo "$sha  tinyshakespeare.txt.tmp" | sha256sum -c -
mv tinyshakespeare.txt.tmp tinyshakespeare.txt
echo "wrote data/tinyshakespeare.txt"
