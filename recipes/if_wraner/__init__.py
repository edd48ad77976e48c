"""IF-WRANER (Instruction Finetuned Word-embedding based Retrieval Augmented large language model for NER; Jain et
al., EMNLP 2024 Industry, arXiv:2411.00451) on the bundled SmolLM2-135M-Instruct.

The LM is instruction-tuned with an answer-only loss (``CausalLMLoss`` over ``PromptAnswerProcessor`` labels) to
answer ``type: span`` lines given the instruction, the domain's label set and the top-k retrieved examples; few-shot
target domains are evaluated with their own small train split as the retrieval pool, by greedy decoding parsed with
a tolerant parser. See ``prompts.py`` (prompt source, parser, regularisation) and ``metrics.py``.

    polymodal fit --config recipes/if_wraner/smollm2.yaml           # tune, then test (word retrieval, k=3)
    polymodal sweep recipes/if_wraner/sweep.yaml --root runs/sweeps/if_wraner   # the ablation table
"""
