"""Extractive question answering (SQuAD v1.1 and v2.0), as building blocks the finetune stage's task types
plug together: reading SQuAD files (`reading`), windows of (question, context) tokens with answer positions
(`features`), the forward the perturbation core runs (`forward`), per-window logits back to text spans
(`postprocess`) and the official exact-match and F1 (`squad_metrics`)."""
