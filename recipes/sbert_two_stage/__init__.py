"""Two-stage SBERT (the MahaSBERT / HindSBERT recipe): NLI triplets with in-batch + hard negatives,
then STS-B regression (CoSENT) starting from the stage-1 encoder.

Stage 1: ``polymodal fit --config recipes/sbert_two_stage/nli.yaml``
Stage 2: ``polymodal fit --config recipes/sbert_two_stage/sts.yaml`` (loads stage 1's export)
"""
