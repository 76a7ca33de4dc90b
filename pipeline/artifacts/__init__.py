"""The files that pass between stages: one module per contract, holding its names, reader and writer.

snapshot      data/raw: tasks.jsonl (task + image record per line), project.json
annotations   data/annotations: per-annotator label maps and index.jsonl
labels        data/labels/<task_id>.png: one consensus label map per task
splits        data/splits/<name>.txt: task ids of each split named in split.fractions
reports       streamed JSON reports (validation.json, agreement.json) and the parts read back
"""
