// Package build turns a source directory into an image: it reads the
// directory's wisp.yaml (strictly: unknown keys and wrong types are errors),
// detects the runtime from its files when none is named, generates the
// Dockerfile of the runtime's pack (go, node, python, dockerfile, stdio) with
// overridable base images, and packs the build context (honouring
// .dockerignore and .wispignore, bounded in size) with a digest of the
// source, so an identical source can reuse its image.
package build
