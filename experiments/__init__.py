"""Experiments: the paper's analyses, the demo, and the `mdf` command line (imports everything;
nothing imports it).

=========================  ============================================================
module                     what it holds
=========================  ============================================================
:mod:`.cli`                the ``mdf`` group; loads each package's commands lazily
:mod:`.commands`           ``mdf experiments objective|jnd|pd|srocc|paper`` and ``mdf demo``
:mod:`.analyses`           figures 4, 5, 6, 9 as pure functions (tables and Figures)
:mod:`.figures`            the analyses written into a folder (CSV + PNG, atomically)
:mod:`.paper`              the paper's full protocol from a ``paper.toml``, resumable
:mod:`.demo`               the whole pipeline on bundled images (``mdf demo``)
:mod:`.tid_like`           the demo's small TID2013-layout set with synthetic scores
:mod:`.report`             the demo's ``report.md``
=========================  ============================================================
"""
