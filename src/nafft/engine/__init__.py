"""Training and evaluation engines.

Training: `nafft.engine.trainer.train(config, run_dir)` with `nafft.engine.config.load_config(path)`; see
`nafft.engine.trainer` for the loop and `nafft.engine.run_checkpoints` for the files a run writes.
"""
