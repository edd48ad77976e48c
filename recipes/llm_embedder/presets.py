"""The llm_embedder recipe's preset: a contrastive System whose query column carries an instruction.

LG-ANNA-Embedding (and E5-Mistral / NV-Embed before it) prefix each *query* with a task instruction and
few-shot examples, while documents stay bare; the tower is shared. :func:`InstructedContrastiveSystem`
fills :class:`polymodal.System` exactly as :func:`polymodal.presets.ContrastiveSystem` does, plus a processor
override per instructed column that renders ``instruction`` + examples + ``{text}`` before the tower's tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from polymodal.metrics.step import PairSimilarity, StepMetric
from polymodal.modality import Encoder
from polymodal.poolers import Pooler
from polymodal.poolers.prompt import PromptedProcessor, PromptTemplate
from polymodal.system import System

__all__ = ["InstructedContrastiveSystem", "instruction_template"]


def instruction_template(instruction: str, examples: Sequence[Sequence[str]] = (), query: str = "Query: ") -> str:
    """``instruction`` + one ``Query: q -> d`` line per few-shot example + ``Query: {text}`` (one ``{text}`` slot)."""
    if not instruction.strip():
        raise ValueError("instruction must not be empty")
    lines = [instruction.strip()]
    for i, example in enumerate(examples):
        if len(example) != 2 or not all(isinstance(x, str) and x.strip() for x in example):
            raise ValueError(f"examples[{i}]: expected [query, document] (two non-empty strings), got {example!r}")
        if "{text}" in example[0] or "{text}" in example[1]:
            raise ValueError(f"examples[{i}]: '{{text}}' is the query slot and may not appear in an example")
        lines.append(f"{query}{example[0]} -> {example[1]}")
    lines.append(f"{query}{{text}}")
    return PromptTemplate("\n".join(lines)).template


def InstructedContrastiveSystem(  # noqa: N802 - a preset reads like the class it builds
    encoder: Encoder,
    instruction: str,
    examples: list[list[str]] | None = None,
    columns: list[str] | None = None,
    pooler: Pooler | None = None,
    loss: nn.Module | None = None,
    normalize: bool = False,
    metrics: dict[str, StepMetric] | None = None,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.1,
) -> System:
    """A shared-tower contrastive System whose ``columns`` (default ``[anchor]``) get the instruction prompt.

    Args:
        encoder: the shared tower (its own ``prompt``, if any, is applied after the instruction is rendered).
        instruction: task description, e.g. ``"Given a premise, retrieve a hypothesis that it entails."``.
        examples: few-shot ``[query, document]`` pairs rendered between the instruction and the query.
        columns: the query columns that carry the instruction (documents and STS validation pairs stay bare).
        pooler, loss, normalize, metrics, optimizer, warmup_ratio: as :func:`~polymodal.presets.ContrastiveSystem`.
    """
    from polymodal.losses import InfoNCELoss

    template = instruction_template(instruction, examples or [])
    processors = {column: PromptedProcessor(encoder.processor, template) for column in columns or ["anchor"]}
    return System(
        tower=encoder,
        pooler=pooler,
        normalize=normalize,
        loss=loss if loss is not None else InfoNCELoss(),
        metrics=metrics if metrics is not None else {"sts": PairSimilarity()},
        processors=processors,
        optimizer=optimizer,
        warmup_ratio=warmup_ratio,
    )
