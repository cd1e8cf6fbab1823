"""The figures the lessons show, one call each, in one module a topic:
:mod:`.images`, :mod:`.codes`, :mod:`.sweep`, :mod:`.priors`, :mod:`.generation`, :mod:`.quantizers` and
:mod:`.transformers`.

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot's global state, so a notebook cell that ends with the call shows the
figure exactly once, and ``fig.savefig(path)`` works in a script. Every figure
has a title and labelled axes. In a notebook, ``%matplotlib inline`` (the lessons'
first cell runs it; Colab's default) makes a cell that ends with a figure draw it.
"""

from .codes import (  # noqa: F401
    code_change,
    code_maps,
    code_usage,
    code_variants,
    codebook_2d,
    edited_code_maps,
    single_code_images,
)
from .generation import (  # noqa: F401
    class_histograms,
    completions,
    completions_as_asked,
    conditional_grid,
    interpolation_curves,
    interpolation_strip,
    least_confident,
)
from .images import (  # noqa: F401
    history,
    image_grid,
    image_rows,
    latent_manifold,
    latent_scatter,
    reconstructions,
    tile_images,
)
from .priors import (  # noqa: F401
    blind_counts,
    influence_maps,
    masks,
    raster_order,
)
from .quantizers import (  # noqa: F401
    code_use_curves,
    fsq_staircase,
    quantizer_rate_distortion,
    quantizers_at_343,
    rotation_gradients,
)
from .sweep import (  # noqa: F401
    ablations,
    codebook_use,
    rate_distortion,
    reconstruction_rows,
)
from .transformers import (  # noqa: F401
    attention_on_map,
    attention_weights,
    cross_entropy_by_context,
    maskgit_steps,
    masking_schedules,
    quality_vs_speed,
)

__all__ = [
    "image_grid",
    "reconstructions",
    "history",
    "latent_scatter",
    "latent_manifold",
    "tile_images",
    "image_rows",
    "code_maps",
    "code_usage",
    "codebook_2d",
    "edited_code_maps",
    "code_change",
    "code_variants",
    "single_code_images",
    "rate_distortion",
    "codebook_use",
    "reconstruction_rows",
    "ablations",
    "raster_order",
    "masks",
    "influence_maps",
    "blind_counts",
    "conditional_grid",
    "completions",
    "completions_as_asked",
    "class_histograms",
    "least_confident",
    "interpolation_strip",
    "interpolation_curves",
    "fsq_staircase",
    "rotation_gradients",
    "quantizers_at_343",
    "quantizer_rate_distortion",
    "code_use_curves",
    "attention_weights",
    "cross_entropy_by_context",
    "masking_schedules",
    "maskgit_steps",
    "attention_on_map",
    "quality_vs_speed",
]
