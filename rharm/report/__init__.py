"""One summary dataclass per section of each chapter, computed from results; the chapter glues them with
:func:`rharm.headline.publish`."""
