"""Keras callbacks that are not tuning strategies: BackupAndRestore (exact resume) and MemberBoard
(one TensorBoard run per member). Imports population/, strategies/ and the layers below them."""
