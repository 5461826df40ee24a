"""Teachers: every way of labelling frames (the teacher network, torchvision models, label
directories, the synthetic oracle, plugins) behind one protocol, their specs that travel as
bytes, and labelling a whole video into a label directory.

May import `models`, `data`, `wire` and the plain modules.
"""
