"""Who runs the annotation step (`engine.annotate_rows`) over the episodes: the same step, staging and output.

`annotator` (`Annotator`, the `datasets.map` callable), `local` (`run_annotation`: datasets.map over the episode
table in this process; `write_annotations`), `ray` (Ray Data: CPU decode tasks, VLM actors), `jobs` (HF Jobs: one
job, or N frame-balanced shard jobs whose staging `merge` writes once).
"""
