"""Learning on the server, one stream at a time: the labelled window, adaptive sampling and
training periods (ASR/ATR), a distillation round, the gradient-guided coordinate mask and the
update packet, fused rounds over many streams, and the named strategies.

`session.StreamSession` is the whole server side of one stream. May import `teach`, `models`,
`device`, `data`, `wire` and the plain modules; never the experiment or the fleet.
"""
