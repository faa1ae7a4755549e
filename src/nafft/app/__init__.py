"""`nafft serve`: a local web app to deblur photographs, compare models and strengths, and download the results.

`jobs.py` holds the queue and the work (no web code), `server.py` the page and the JSON API (Starlette on uvicorn,
the optional extra `pip install "nafft[app]"`), `static/` the page itself. docs/app.md says why this stack and not
Gradio, with the measurements.
"""
