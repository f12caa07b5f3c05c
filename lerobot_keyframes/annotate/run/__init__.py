"""A run around the annotation step: where it reads, stages, writes and pushes, and the steps before and after.

`plan` (the frozen `RunPlan`, made once and read by every step: source, output root, staging folder, keys, modules,
push target, engine), `preflight` (every check that can fail, before any
work), `prepare` (source, episode table, staging opened and locked), `keys` and `staging` (resume), `output`
(staged rows to the annotated dataset: rows kept, validated, written), `publish` (the push), `finish` (the end
every executor shares), `merge` (a sharded run's staging written once), `result` (`AnnotateResult`).
"""
