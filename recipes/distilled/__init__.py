"""Distilled Sentence Embedding (Barkan et al., AAAI 2020): a cross-encoder teacher trained on
STS-B, its scores on the training pairs, and a bi-encoder student regressing them.

1. ``polymodal fit --config recipes/distilled/teacher.yaml`` (cross-encoder, exports to runs/distilled-teacher/model)
2. ``python -m polymodal.recipes.distilled.score --teacher runs/distilled-teacher/model ...`` (teacher scores)
3. ``polymodal fit --config recipes/distilled/student.yaml`` (bi-encoder on the teacher's scores)
"""
