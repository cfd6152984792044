"""Fuzz targets of the parsers (docs/cli.md, "Hostile inputs"): :mod:`.gvc_harness` (``.gvc``
streams), :mod:`.safetensors_harness` (safetensors headers and indexes) and :mod:`.make_corpus`
(the seed streams of the committed corpus ``tests/fuzz/corpus``)."""
