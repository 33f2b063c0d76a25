"""Image distillation methods, one module each (registered under the entry-point group ``distill.methods``)."""
