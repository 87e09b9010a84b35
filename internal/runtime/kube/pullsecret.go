package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/wisp-run/wisp/internal/runtime"
)

// pullSecretName is the Secret the adapter keeps from Config.PullAuth.
func pullSecretName(owner string) string { return "wisp-" + owner + "-registry" }

// ensurePullSecret applies the Secret pods pull Config.PullAuth's
// registry with, and makes it the pods' image pull secret. An explicit
// Config.ImagePullSecret wins: then nothing is applied.
func (k *Kube) ensurePullSecret(ctx context.Context) error {
	a := k.cfg.PullAuth
	if k.cfg.ImagePullSecret != "" || (a.Username == "" && a.Password == "") {
		return nil
	}
	if a.Server == "" {
		return fmt.Errorf("kube: registry credentials without a registry to use them for")
	}
	body, err := dockerConfigJSON(a)
	if err != nil {
		return err
	}
	name := pullSecretName(k.cfg.Owner)
	sec := corev1ac.Secret(name, k.ns).
		WithLabels(map[string]string{runtime.LabelManaged: "true", runtime.LabelOwner: k.cfg.Owner}).
		WithType(corev1.SecretTypeDockerConfigJson).
		WithData(map[string][]byte{corev1.DockerConfigJsonKey: body})
	if _, err := k.cs.CoreV1().Secrets(k.ns).Apply(ctx, sec, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("kube: apply the pull secret %s for %s: %w (may this identity patch secrets in %s?)", name, a.Server, err, k.ns)
	}
	k.cfg.ImagePullSecret = name
	return nil
}

// dockerConfigJSON is a .dockerconfigjson with one registry's login.
func dockerConfigJSON(a runtime.RegistryAuth) ([]byte, error) {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	//nolint:gosec // G117: a pull secret holds the password by design; it goes only into a Secret
	return json.Marshal(map[string]map[string]entry{"auths": {a.Server: {
		Username: a.Username, Password: a.Password,
		Auth: base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password)),
	}}})
}
