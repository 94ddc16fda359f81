"""The recipe of each stored kind: a version, bumped when that kind's results are meant to change, and a canary.

A result's key hashes its kind, its configuration, its kind's recipe version and the torch version (major.minor),
not the source of the code that computed it (:func:`rharm.store.cache.key`). So moving a function, splitting a
loop or fixing a docstring keeps every stored result, and a change meant to alter results says so by bumping
``version``.

Stale reuse stays impossible through each kind's **canary**: a tiny deterministic computation through the same code
path as the stored results (a few dozen images or sentences, one epoch or two steps, on the CPU), whose output is
committed here beside the version. ``tests/test_recipes.py`` runs every canary; when an output moves beyond the
tolerance while the version stayed, the test fails with "bump RECIPE for <kind>". The tolerance (relative 1e-4,
1e-3 for text) admits the last-bit differences between CPUs' floating-point kernels and nothing a real change of
behaviour produces (the planted changes in the test move the outputs by 1e-2 or more).

``legacy`` lists the code fingerprints (:func:`rharm.store.fingerprint.code_fingerprint`) under which results were
keyed before recipes existed and whose behaviour is this version's: :func:`rharm.store.cache.rekey` (``rharm store
rekey``) adopts those results under their new keys when the canary matches, so nothing is retrained. They are the
fingerprints of the code at commits ec292d9 (the committed cpu book's runs) and 2f7f221 (the same behaviour,
refactored).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """One stored kind's version, its canary (``module:function`` returning a list of floats), the canary's committed
    output, its relative tolerance, and the legacy code fingerprints this version adopts."""

    version: int
    canary: str
    expected: tuple[float, ...]
    rtol: float = 1e-4
    legacy: tuple[str, ...] = ()


RECIPES: dict[str, Recipe] = {
    "simclr_run": Recipe(
        version=1, canary="rharm.runs.images:canary",
        expected=(3.480318784713745, 3.43692946434021, 0.044300634413957596, 0.059188392013311386, 0.014415218494832516, 0.2430858612060547, 0.008060677908360958, 0.026835504919290543),
        legacy=(
                "29cb5a2024f00fa7cc39093fead2409ef23fe295f8d7d277babe4151ea99c639",
                "e228eae8768100ff22cf53a32242159045205f906c94f5dc41c9281ca6e8211f",
            ),
    ),
    "text_simcse": Recipe(
        version=1, canary="rharm.runs.text:canary", rtol=1e-3,
        expected=(1.6242756843566895, 1.5235466957092285, 2.8374293492561264e-07, 0.05104765668511391, 0.009987525641918182, 0.032982055097818375),
        legacy=(
                "1271bbc8b85c71730af8362643e159487d47b6ee7aa442c28a97344eced9415c",
                "9b449e0546fc598ee0d3bcef247e2a12878338d347a1f5c17ea6b4cda1796634",
            ),
    ),
    "text_mechanism": Recipe(
        version=1, canary="rharm.runs.text_mechanism:canary", rtol=1e-3,
        expected=(1.371041178703308, 1.3332040309906006, 0.12341614812612534, 1.1166000366210938, 2.0434682369232178, -0.3732416033744812),
    ),
    "theory_sbm_node": Recipe(
        version=1, canary="rharm.theory.node:canary",
        expected=(-0.49747243456463386, 0.2740270506040881, 0.21989705551885566, 0.0005102310343874989, 0.417585343257425, 0.4935431957259968),
        legacy=(
                "5b660118e7721de3bed4f01181d5197110be7ccf4e6e2ad87cad2bb36d7e7189",
            ),
    ),
    "mediation": Recipe(
        version=1, canary="rharm.harm.mediation:canary",
        expected=(0.9640151515151515, 0.8395833333333335, 0.6614583333333334, 0.6704545454545454, 0.0, 0.96875),
        legacy=(
                "59bf55645fba25a7ac7549d856a240f4a9433053f9432b933f0e4499c5821230",
            ),
    ),
}
