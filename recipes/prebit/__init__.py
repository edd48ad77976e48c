"""PreBit (Zou & Herremans, 2023): extreme Bitcoin price-movement prediction from candlesticks,
correlated assets and text, with a soft-voting / stacked ensemble and a trading backtest.

Reference:
    Y. Zou, D. Herremans. "PreBit — A multimodal model with Twitter FinBERT embeddings for
    extreme price movement prediction of Bitcoin." Expert Systems with Applications 233 (2023).
    https://arxiv.org/abs/2206.00648

Substitutions (docs/results.md): dated Bitcoin news instead of tweets, MiniLM fine-tuned on Financial PhraseBank
(``finance_minilm.yaml``) instead of FinBERT. Run ``polymodal sweep recipes/prebit/sweep.yaml``, then
``python -m polymodal.recipes.prebit report`` on the runs (the commands are in ``sweep.yaml``).
"""

from __future__ import annotations

from polymodal.recipes.prebit.data import Period, PhraseBank, PreBitDataModule, PreBitDays

__all__ = ["Period", "PhraseBank", "PreBitDataModule", "PreBitDays"]
