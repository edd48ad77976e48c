"""PreBit (Zou & Herremans, 2023): extreme Bitcoin price-movement prediction from candlesticks,
correlated assets and text, with a soft-voting / stacked ensemble and a trading backtest.

Reference:
    Y. Zou, D. Herremans. "PreBit — A multimodal model with Twitter FinBERT embeddings for
    extreme price movement prediction of Bitcoin." Expert Systems with Applications 233 (2023).
    https://arxiv.org/abs/2206.00648

Substitutions (documented in docs/results.md): the tweets are not public outside Kaggle, so
the text stream is dated Bitcoin news (2011-06..2019-05); FinBERT weights are not available
offline, so the finance-adapted encoder is the bundled MiniLM fine-tuned on Financial
PhraseBank (``finance_minilm.yaml``).

Run (see ``python -m polymodal.recipes.prebit --help``)::

    polymodal fit --config recipes/prebit/candles.yaml     # and assets.yaml, text.yaml
    python -m polymodal.recipes.prebit report --runs runs/prebit/candles runs/prebit/assets runs/prebit/text
"""

from __future__ import annotations

from polymodal.recipes.prebit.callbacks import SavePredictions
from polymodal.recipes.prebit.data import PreBitDataModule
from polymodal.recipes.prebit.fin_sentiment import PhraseBankDataModule

__all__ = ["PhraseBankDataModule", "PreBitDataModule", "SavePredictions"]
