"""Architecture diagrams, drawn by code when the book is built (no images from elsewhere).

Each function returns a :class:`matplotlib.figure.Figure`, as :mod:`vqvae_lessons.plotting`
does; a lesson's cell that ends with the call shows it. :mod:`.core` holds the drawing
primitives (boxes, arrows, labels) the diagrams share; one module a diagram's topic.
"""
