"""Small helpers with one home each: atomic files, lazy exports, frame timelines, the after-fork torch guard,
Hub errors that say what to do.

Nothing here knows about datasets or models; every other folder may import from it.
"""
