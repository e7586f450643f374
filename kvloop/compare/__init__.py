"""``kvloop compare``: which way of learning from operators' feedback is better, by how much,
at what operator cost, and how sure are we? See ``kvloop.compare.runner``."""
