"""Prompt-based last-token pooling (PromptEOL) and the prompt template helper.

Reference: Jiang et al., "Scaling Sentence Embeddings with Large Language Models" (PromptEOL,
2023), https://arxiv.org/abs/2307.16645 : wrap the sentence in
``This sentence : "X" means in one word:"`` and take the last token's hidden state, which the
LM has trained to hold a prediction of the one-word summary.

The template is applied by a :class:`PromptedProcessor` around any processor of string inputs
(``polymodal.plugins.text.decoder.DecoderTextEncoder(prompt=...)`` uses it and saves the
template with the model); the pooler itself is last-token pooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from polymodal.modality import Processor
from polymodal.poolers.last_token import LastTokenPooler

__all__ = ["PROMPTS", "PromptLastTokenPooler", "PromptTemplate", "PromptedProcessor"]

#: Named templates; ``{text}`` marks where the input goes.
PROMPTS: dict[str, str] = {
    # PromptEOL (Jiang et al. 2023)
    "prompteol": 'This sentence : "{text}" means in one word:"',
    # the short form used in the Token Prepending paper's experiments
    "one_word": 'This sentence: "{text}" means in one word:"',
    # Pretended chain of thought / knowledge enhancement (Zhang et al. 2024)
    "pcot": 'After thinking step by step, this sentence : "{text}" means in one word:"',
    "ke": "The essence of a sentence is often captured by its main subjects and actions, while descriptive "
    'terms provide additional but less central details. With this in mind , this sentence : "{text}" '
    'means in one word:"',
}


@dataclass(frozen=True)
class PromptTemplate:
    """A template with exactly one ``{text}`` slot (or the name of one in :data:`PROMPTS`).

    Example:
        >>> PromptTemplate("prompteol")("A man plays a guitar.")
        'This sentence : "A man plays a guitar." means in one word:"'
    """

    template: str

    def __post_init__(self) -> None:
        resolved = PROMPTS.get(self.template, self.template)
        if resolved.count("{text}") != 1:
            raise ValueError(
                f"prompt template must contain '{{text}}' exactly once (or be one of {', '.join(PROMPTS)}), "
                f"got {self.template!r}"
            )
        object.__setattr__(self, "template", resolved)

    def __call__(self, text: str) -> str:
        # str.replace, not str.format: braces in user text or template stay literal
        return self.template.replace("{text}", text)


class PromptedProcessor(Processor):
    """Applies a :class:`PromptTemplate` to every string before the wrapped processor.

    Picklable (DataLoader workers) as long as the wrapped processor is.
    """

    def __init__(self, base: Processor, template: str | PromptTemplate) -> None:
        self.base = base
        self.template = template if isinstance(template, PromptTemplate) else PromptTemplate(template)

    def _wrap(self, values: Sequence[Any]) -> list[Any]:
        return [self.template(v) if isinstance(v, str) else v for v in values]

    def validate(self, value: Any) -> None:
        self.base.validate(value)

    def lengths(self, values: Sequence[Any]) -> list[int]:
        sizer = getattr(self.base, "lengths", None)
        wrapped = self._wrap(values)
        return list(sizer(wrapped)) if sizer is not None else [len(v) for v in wrapped]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        return self.base(self._wrap(values))

    def __getattr__(self, name: str) -> Any:  # max_length, tokenizer, pad_id, ...
        if name in {"base", "template"}:
            raise AttributeError(name)
        return getattr(self.base, name)


class PromptLastTokenPooler(LastTokenPooler):
    """Last-token pooling meant for prompted inputs; records the template it was used with.

    The pooler does not change the input (the encoder's processor does); keeping the template
    here documents in the saved config which prompt the embeddings assume.

    Args:
        template: the prompt (a :data:`PROMPTS` name or a string with ``{text}``).
    """

    def __init__(self, template: str = "prompteol") -> None:
        super().__init__()
        self.template = PromptTemplate(template).template

    def get_config(self) -> dict:
        return {"template": self.template}
