"""Images in and out: loading and conversion (:mod:`.images`), atomic files (:mod:`.files`),
the run record inside every output (:mod:`.record`) and the loss history (:mod:`.history`)."""
