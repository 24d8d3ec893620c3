"""Keras callbacks that are not tuning strategies: BackupAndRestore (an exact resume), MemberBoard
(a TensorBoard run per member). May import strategies/, population/ and the rooms below them."""
