"""rharm: representation and allocation harms in contrastive learning.

The companion package of the rharm compendium, which reproduces and extends Maity, Agarwal, Yurochkin and Sun,
"An Investigation of Representation and Allocation Harms in Contrastive Learning" (ICLR 2024, arXiv 2310.01583).
"""

__version__ = "0.1.0"
