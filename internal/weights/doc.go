// Package weights is the store of imported pretrained weights in object
// storage: one current file per catalog model, which a pretrained training
// starts from instead of its model hub.
package weights
