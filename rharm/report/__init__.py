"""One summary dataclass per section of each chapter, computed from results; the chapter glues them with
:func:`rharm.page.headline.publish`."""
