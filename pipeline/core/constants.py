"""Values every stage must agree on, defined once."""

# The label value of pixels that carry no class (undecided, void, unlabeled). Label maps are
# uint8, so classes are 0..254 and 255 is the only value outside them; `base.ignore_index` in
# params.yaml must equal it (checked on load by pipeline.core.params).
IGNORE_INDEX = 255
