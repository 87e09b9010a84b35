package docker

// SetBeforeStart sets a hook that runs between a start's create and its
// ContainerStart, with the sandbox taken ("" for none).
func SetBeforeStart(d *Docker, f func(sandbox string)) { d.beforeStart = f }
