"""\\p{L}, \\p{N} and \\s for every code point, as the `tokenizers` library's
regex engine sees them: read off its own pre-tokenizer, not from Python's
unicodedata (a different Unicode version: about 9,000 letters differ).

Probing all code points takes about 13 s, so the table is kept on disk per
`tokenizers` version (the package ships it for the version it was built
with; other versions are probed once per machine and cached).
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path

import numpy as np

from dedupe_at_scale.stages.tokens.pretokens import LETTER, NUMBER, OTHER, SPACE

SHIPPED = Path(__file__).resolve().parents[2] / "models"
CHUNK = 65536


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dedupe-at-scale"


def _file_name() -> str:
    return f"unicode-classes-tokenizers-{metadata.version('tokenizers')}.npz"


@functools.cache
def regex_classes() -> np.ndarray:
    """uint8 class (LETTER, NUMBER, SPACE, OTHER) of every code point."""
    for folder in (SHIPPED, _cache_dir()):
        path = folder / _file_name()
        if path.exists():
            return np.load(path)["classes"]
    classes = probe()
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    temporary = cache / f"{_file_name()}.{os.getpid()}.tmp.npz"
    np.savez_compressed(temporary, classes=classes)
    os.replace(temporary, cache / _file_name())
    return classes


def probe() -> np.ndarray:
    """Ask GPT-2's pre-tokenizer: c is a letter when "x"+c is one piece
    (" ?\\p{L}+"), a number when "1"+c is, other punctuation when "!"+c is;
    what is none of these is whitespace."""
    from tokenizers.pre_tokenizers import ByteLevel

    split = ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str
    points = np.array([c for c in range(0x110000) if not 0xD800 <= c < 0xE000], np.int64)
    classes = np.full(0x110000, SPACE, np.uint8)
    classes[0xD800:0xE000] = OTHER  # never in valid UTF-8
    for prefix, kind in (("!", OTHER), ("1", NUMBER), ("x", LETTER)):
        for s in range(0, len(points), CHUNK):
            chunk = points[s : s + CHUNK]
            # Each probe is three code points: prefix, c, newline.
            text = "".join(prefix + chr(c) + "\n" for c in chunk)
            joined = [a // 3 for _, (a, b) in split(text) if b - a == 2 and a % 3 == 0]
            classes[chunk[joined]] = kind
    return classes


if __name__ == "__main__":  # refresh the shipped table: python -m ...tokens.classes
    np.savez_compressed(SHIPPED / _file_name(), classes=probe())
    print(SHIPPED / _file_name())
