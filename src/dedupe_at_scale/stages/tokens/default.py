"""The tokenizer the job counts with when `tokens.tokenizer` is not set: a
byte-level BPE (GPT-2's pre-tokenizer, 8,192 tokens) trained by this project
on text it may redistribute: Python's own documentation (pydoc_data, PSF
licence) and documents of the built-in sample generator in its seven
languages. It is small and general, so counts are close to, not equal to, a
production tokenizer's: set `tokens.tokenizer` to your model's tokenizer.json
for budgets. Rebuild it with `python -m dedupe_at_scale.stages.tokens.default`.
"""

from __future__ import annotations

import random
from pathlib import Path

DEFAULT_TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "tokenizer.json"
VOCAB_SIZE = 8192
SAMPLE_DOCUMENTS = 3000


def training_texts() -> list[str]:
    import pydoc_data.topics

    from dedupe_at_scale.sample import bank, clean_document

    rng = random.Random(0)
    texts = [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)]
    languages = sorted(bank.BANK)
    texts += [clean_document(rng, languages[i % len(languages)]) for i in range(SAMPLE_DOCUMENTS)]
    return texts


def train(path: Path = DEFAULT_TOKENIZER) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_texts(), trainer)
    tokenizer.save(str(path))


if __name__ == "__main__":
    train()
    print(DEFAULT_TOKENIZER)
