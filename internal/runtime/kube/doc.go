// Package kube runs Wisp instances as pods on Kubernetes through client-go.
// Kubernetes types never leave this package.
//
// The runtime port is per instance; Kubernetes scales Deployments. The
// mapping:
//
//   - Each version is one Deployment and one ClusterIP Service of the same
//     name (objectName: "<service>-v<number>", shortened with a hash when
//     longer than a DNS label), labelled with the installation's owner ID,
//     the service, the version ID and number. The Deployment is created
//     with 0 replicas and outlives its last instance, so a scale from zero
//     only adds a pod; it is removed with its version (VersionRemover).
//   - An instance is one pod of that Deployment, claimed by Start: Start
//     raises the replicas by one through the scale subresource, waits for
//     a pod nobody has claimed and claims it by setting the label
//     wisp.instance from "" to the instance ID with a JSON patch whose
//     "test" operation makes the claim a compare-and-swap, so two Starts
//     (in this process or another) never take the same pod.
//   - Stop never lets the ReplicaSet choose among instances: it removes
//     the pod's pod-template-hash label, so the ReplicaSet lets go of the
//     pod (and makes a replacement), waits for that, then lowers the
//     replicas by one, which the ReplicaSet takes from its replacement (a
//     pod just made is pending, and pending pods go first), and deletes the
//     pod itself. Should the ReplicaSet take a start's pending pod instead,
//     that start claims the replacement (see WaitReady's reclaim).
//   - Readiness (ReadinessWaiter): the pod's Ready condition, its endpoint
//     in the Service's EndpointSlice, or the adapter's own probe of the pod
//     address, whichever comes first. The kubelet probes at most once a
//     second, so a process that is not listening at the kubelet's first
//     probe would otherwise wait a second more.
//   - What keeps a pod from becoming ready (an image that cannot be pulled,
//     a process that exits, a pod the scheduler cannot place, a container
//     that cannot be created) is read from the pod's status as the informer
//     delivers it and ends the wait at once with the kubelet's or the
//     scheduler's message.
//
// Everything is read from shared informers (Deployments, pods and
// EndpointSlices of this installation, by label); waits are woken by
// informer events, never by polling the API server.
//
// Kubernetes has no pause: the runtime does not implement runtime.Pauser.
// Logs come from pods/log; the API server merges stdout and stderr unless
// its PodLogsQuerySplitStreams feature gate is on (alpha in 1.37), so
// without it every line is reported as stdout.
package kube
