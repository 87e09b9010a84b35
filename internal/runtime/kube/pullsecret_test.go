package kube

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/wisp-run/wisp/internal/runtime"
)

// TestPullSecretFromRegistryLogin: a registry login becomes a
// dockerconfigjson Secret the pods pull with; an explicit pull secret
// wins, and no login makes no Secret.
func TestPullSecretFromRegistryLogin(t *testing.T) {
	login := runtime.RegistryAuth{Server: "reg.example:5000", Username: "ci", Password: "s3cret"}
	for _, tc := range []struct {
		name     string
		cfg      Config
		want     string // the pods' pull secret
		wantKept bool   // a Secret was applied
	}{
		{"login", Config{PullAuth: login}, "wisp-owner1-registry", true},
		{"explicit secret wins", Config{PullAuth: login, ImagePullSecret: "regcred"}, "regcred", false},
		{"no login", Config{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cfg := tc.cfg
			cfg.Namespace, cfg.Owner = testNS, "owner1"
			k, err := start(t.Context(), cfg, cs, "fake")
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if k.cfg.ImagePullSecret != tc.want {
				t.Fatalf("pods pull with %q, want %q", k.cfg.ImagePullSecret, tc.want)
			}
			d, err := deploymentObject(k.deploymentApply(testSpec("hello-abc")))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Spec.Template.Spec.ImagePullSecrets; (tc.want == "" && len(got) != 0) || (tc.want != "" && (len(got) != 1 || got[0].Name != tc.want)) {
				t.Fatalf("pod template pull secrets %v, want %q", got, tc.want)
			}
			list, err := cs.CoreV1().Secrets(testNS).List(t.Context(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantKept {
				if len(list.Items) != 0 {
					t.Fatalf("secrets %v, want none", list.Items)
				}
				return
			}
			if len(list.Items) != 1 {
				t.Fatalf("%d secrets, want 1", len(list.Items))
			}
			sec := list.Items[0]
			if sec.Type != corev1.SecretTypeDockerConfigJson || sec.Labels[runtime.LabelOwner] != "owner1" {
				t.Fatalf("secret type %s, labels %v", sec.Type, sec.Labels)
			}
			var cfgJSON struct {
				Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
			}
			if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfgJSON); err != nil {
				t.Fatal(err)
			}
			a := cfgJSON.Auths["reg.example:5000"]
			if a.Username != "ci" || a.Password != "s3cret" || a.Auth != "Y2k6czNjcmV0" {
				t.Fatalf("login in the secret: %+v", cfgJSON.Auths)
			}
		})
	}
}
