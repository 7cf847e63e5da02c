"""The files every stage reads and writes, below training so that any stage can use them without it:
directories published whole (publish), local Hugging Face tokenizer and model directories read with clear
errors (hf_dirs), and PNG plots of a run (plots). Each needs alum.errors and nothing else of alum."""
