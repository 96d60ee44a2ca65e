"""The network and the mathematics of a run: the VGG (:mod:`.vgg`), losses (:mod:`.losses`),
optimisers (:mod:`.optim`), colour/mask/scale controls (:mod:`.controls`) and the matting
Laplacian of photo mode (:mod:`.matting`). Nothing here reads files or knows where weights
come from."""
