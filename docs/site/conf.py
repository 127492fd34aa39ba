"""The course as a static site: the committed notebooks with the outputs of their real runs, never re-executed.

    pip install -e ".[site]" && python -m sphinx -b html docs/site build/site

Builds offline: the theme comes from PyPI and MathJax from sphinx-mathjax-offline, so math renders without a
network. Saved widget state is not shown (it needs widget JavaScript from the web); every slider has a static
figure beside it."""

project = "kdlab"
author = "kdlab"
copyright = "kdlab contributors, MIT license"
root_doc = "index"

extensions = ["myst_nb", "sphinx-mathjax-offline"]
exclude_patterns = ["**/.ipynb_checkpoints", "notebooks/README.md"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"      # the outputs are the committed real runs
nb_ipywidgets_js = {}          # no widget JavaScript from a CDN: saved widget state cannot render offline
nb_merge_streams = True        # one block per cell for printed lines, as in JupyterLab

html_theme = "sphinx_book_theme"
html_title = "kdlab: knowledge distillation, run"
html_theme_options = {"home_page_in_toc": True, "show_navbar_depth": 1, "use_download_button": True}
html_copy_source = True  # the download button offers each page's .ipynb
suppress_warnings = ["mystnb.unknown_mime_type"]
