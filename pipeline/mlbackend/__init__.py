"""A live model inside Label Studio: the ML backend protocol served over the trained checkpoint.

model.py       the checkpoint, loaded once and reloaded when the file changes
images.py      task images fetched with pull's code and rules
training.py    the background training run behind the "Start training" button
app.py         the web app (FastAPI): /health, /setup, /predict, /webhook, /status
connect.py     registering the backend with a project through the API
serve.py       wiring from params and options, uvicorn, connecting once listening
background.py  the backend as a background process (the demo leaves it running)
"""
