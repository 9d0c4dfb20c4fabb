package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/ringkv/ringkv/internal/config"
)

// The parts of the Kubernetes objects the test holds to the flags; anything
// else in the manifests is Kubernetes' to check.
type (
	object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	servicePort struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
		Protocol   string `yaml:"protocol"`
	}
	serviceSpec struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []servicePort     `yaml:"ports"`
	}
	selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	antiAffinityTerm struct {
		TopologyKey   string   `yaml:"topologyKey"`
		LabelSelector selector `yaml:"labelSelector"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	}
	claimTemplate struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	pdbSpec struct {
		MaxUnavailable *int     `yaml:"maxUnavailable"`
		MinAvailable   *int     `yaml:"minAvailable"`
		Selector       selector `yaml:"selector"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []envVar `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
			Protocol      string `yaml:"protocol"`
		} `yaml:"ports"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		StartupProbe   *probe `yaml:"startupProbe"`
		VolumeMounts   []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	statefulSetSpec struct {
		ServiceName         string   `yaml:"serviceName"`
		Replicas            int      `yaml:"replicas"`
		PodManagementPolicy string   `yaml:"podManagementPolicy"`
		Selector            selector `yaml:"selector"`
		Template            struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Affinity                      struct {
					PodAntiAffinity struct {
						Required []antiAffinityTerm `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				SecurityContext struct {
					RunAsUser int `yaml:"runAsUser"`
					FSGroup   int `yaml:"fsGroup"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []volume    `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []claimTemplate `yaml:"volumeClaimTemplates"`
	}
)

// manifests decodes every document of every YAML file in deploy/kubernetes.
func manifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	var objs []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" {
				t.Fatalf("%s: a document without a kind", f)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func find[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			var spec T
			if err := o.Spec.Decode(&spec); err != nil {
				t.Fatalf("%s %s: %v", kind, o.Metadata.Name, err)
			}
			return spec
		}
	}
	t.Fatalf("no %s %q in deploy/kubernetes", kind, name) //nolint:revive // Fatalf ends the test; the return below is for the compiler
	var zero T
	return zero
}

// matches reports whether a selector picks pods with labels.
func matches(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podConfig loads the node configuration a pod of the StatefulSet runs with:
// its args and environment as the kubelet expands them ($(VAR) from the
// container's own variables, with sample values for what the downward API and
// Secrets fill in), through the server's own flag parsing and validation.
func podConfig(t *testing.T, c container, pod string) config.Config {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = map[string]string{
				"metadata.name": pod, "status.podIP": "10.1.2.3",
				"metadata.labels['topology.kubernetes.io/zone']": "zone-a",
			}[e.ValueFrom.FieldRef.FieldPath]
			if env[e.Name] == "" {
				t.Fatalf("env %s: fieldRef %q is not one the test knows", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "from-secret-" + e.ValueFrom.SecretKeyRef.Name
		}
	}
	expand := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	var args []string
	for _, a := range c.Args {
		args = append(args, expand.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := env[m[2:len(m)-1]]
			if !ok {
				t.Fatalf("arg %q: $(%s) is not a variable of the container", a, m[2:len(m)-1])
			}
			return v
		}))
	}
	if len(args) == 0 || args[0] != "server" {
		t.Fatalf("container args %q do not run `ringkv server`", c.Args)
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	cfg := config.Default()
	cfg.AddFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		t.Fatalf("container args: %v", err)
	}
	for name := range env {
		if !strings.HasPrefix(name, config.EnvPrefix) {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, config.EnvPrefix), "_", "-"))
		if fs.Lookup(flag) == nil {
			t.Errorf("env %s names no flag of ringkv server (--%s)", name, flag)
		}
	}
	if err := cfg.Load(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("pod %s: the node would refuse its configuration: %v", pod, err)
	}
	return cfg
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKubernetesManifests checks what makes the manifests work with ringkv:
// the ports the pods declare and the services route to are the ones the node
// listens on, the probes ask the right endpoints on the HTTP port, the node
// ids, --initial-cluster and the headless service agree, the data and the
// TLS and gossip files are mounted where the flags point, one node at most is
// disrupted at a time, no two share a host, and the pod waits out the node's
// graceful shutdown.
func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	sts := find[statefulSetSpec](t, objs, "StatefulSet", "ringkv")
	pod := sts.Template.Spec
	labels := sts.Template.Metadata.Labels
	if !matches(sts.Selector.MatchLabels, labels) {
		t.Errorf("the StatefulSet's selector %v does not match its pods' labels %v", sts.Selector.MatchLabels, labels)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	cfg := podConfig(t, c, "ringkv-1")
	if cfg.NodeID != "ringkv-1" {
		t.Errorf("node id %q, want the pod's name", cfg.NodeID)
	}
	if cfg.Zone != "zone-a" {
		t.Errorf("zone %q, want the topology label's value", cfg.Zone)
	}

	// Ports: declared under the names the services and probes use, with the
	// numbers the node listens on.
	want := map[string]struct {
		port  int
		proto string
	}{
		"client":     {portOf(t, cfg.ClientAddr), "TCP"},
		"http":       {portOf(t, cfg.HTTPAddr), "TCP"},
		"peer":       {portOf(t, cfg.PeerAddr), "TCP"},
		"gossip":     {portOf(t, cfg.GossipAddr), "TCP"},
		"gossip-udp": {portOf(t, cfg.GossipAddr), "UDP"},
	}
	declared := map[string]bool{}
	for _, p := range c.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		w, ok := want[p.Name]
		if !ok {
			t.Errorf("container port %q is not one the node listens on", p.Name)
			continue
		}
		if p.ContainerPort != w.port || proto != w.proto {
			t.Errorf("container port %s is %d/%s, the node listens on %d/%s", p.Name, p.ContainerPort, proto, w.port, w.proto)
		}
		declared[p.Name] = true
	}
	for name := range want {
		if !declared[name] {
			t.Errorf("container port %q is not declared", name)
		}
	}

	// The headless service: the pods' DNS names, before they are ready.
	peerSvc := find[serviceSpec](t, objs, "Service", sts.ServiceName)
	if peerSvc.ClusterIP != "None" || !peerSvc.PublishNotReadyAddresses {
		t.Errorf("service %s: clusterIP %q, publishNotReadyAddresses %v; want a headless service that publishes forming pods", sts.ServiceName, peerSvc.ClusterIP, peerSvc.PublishNotReadyAddresses)
	}
	clientSvc := find[serviceSpec](t, objs, "Service", "ringkv")
	for svcName, svc := range map[string]serviceSpec{sts.ServiceName: peerSvc, "ringkv": clientSvc} {
		if !matches(svc.Selector, labels) {
			t.Errorf("service %s selects %v, not the pods (%v)", svcName, svc.Selector, labels)
		}
		for _, p := range svc.Ports {
			w, ok := want[p.TargetPort]
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			if !ok || p.Port != w.port || proto != w.proto {
				t.Errorf("service %s port %s: %d/%s to %q, not a port of the node", svcName, p.Name, p.Port, proto, p.TargetPort)
			}
		}
	}
	hasPorts := func(svc serviceSpec, names ...string) {
		for _, n := range names {
			if !slices.ContainsFunc(svc.Ports, func(p servicePort) bool { return p.TargetPort == n }) {
				t.Errorf("a service lacks the %s port", n)
			}
		}
	}
	hasPorts(peerSvc, "peer", "gossip", "gossip-udp")
	hasPorts(clientSvc, "client", "http")

	// The cluster forms from every pod, named as the headless service names
	// them, and all pods start at once since none is ready alone.
	if sts.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: a forming node is not ready until all are up, so pods must start in parallel", sts.PodManagementPolicy)
	}
	members, err := cfg.InitialMembers()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != sts.Replicas {
		t.Errorf("--initial-cluster names %d members for %d replicas", len(members), sts.Replicas)
	}
	for i, m := range members {
		id := fmt.Sprintf("ringkv-%d", i)
		host, p, _ := net.SplitHostPort(m.GossipAddr)
		if m.ID != id || !strings.HasPrefix(host, id+"."+sts.ServiceName+".") || p != strconv.Itoa(want["gossip"].port) {
			t.Errorf("--initial-cluster member %d is %s=%s, want %s=%s.%s.<namespace>...:%d", i, m.ID, m.GossipAddr, id, id, sts.ServiceName, want["gossip"].port)
		}
	}

	// Probes: readiness is /readyz, liveness /livez, on the HTTP port.
	for name, pr := range map[string]struct {
		p    *probe
		path string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/livez"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || pr.p.HTTPGet.Port != "http" {
			t.Errorf("%s probe asks %s on port %q, want %s on http", name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path)
		}
	}

	// Data on the pod's own volume claim; TLS material and the gossip key
	// from Secrets mounted where the flags point.
	mountOf := func(path string) string {
		best := ""
		name := ""
		for _, m := range c.VolumeMounts {
			if (path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best) {
				best, name = m.MountPath, m.Name
			}
		}
		return name
	}
	if v := mountOf(cfg.DataDir); v == "" || !slices.ContainsFunc(sts.VolumeClaimTemplates, func(tpl claimTemplate) bool {
		return tpl.Metadata.Name == v
	}) {
		t.Errorf("--data-dir %s is not on a volume claim template (mount %q)", cfg.DataDir, v)
	}
	for flag, path := range map[string]string{"peer-tls-cert": cfg.PeerTLSCert, "peer-tls-key": cfg.PeerTLSKey, "peer-tls-ca": cfg.PeerTLSCA, "gossip-key-file": cfg.GossipKeyFile} {
		v := mountOf(path)
		ok := slices.ContainsFunc(pod.Volumes, func(vol volume) bool {
			return vol.Name == v && vol.Secret != nil
		})
		if path == "" || !ok {
			t.Errorf("--%s %q is not in a mounted Secret", flag, path)
		}
	}
	if cfg.Password == "" && cfg.UsersFile == "" {
		t.Error("the nodes run without a password or users file")
	}

	// One node down at a time, never two on one host, and time to stop.
	pdb := find[pdbSpec](t, objs, "PodDisruptionBudget", "")
	if pdb.MaxUnavailable == nil || *pdb.MaxUnavailable != 1 || pdb.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 (and no minAvailable)")
	}
	if !matches(pdb.Selector.MatchLabels, labels) {
		t.Errorf("PodDisruptionBudget selects %v, not the pods (%v)", pdb.Selector.MatchLabels, labels)
	}
	if !slices.ContainsFunc(pod.Affinity.PodAntiAffinity.Required, func(r antiAffinityTerm) bool {
		return r.TopologyKey == "kubernetes.io/hostname" && matches(r.LabelSelector.MatchLabels, labels)
	}) {
		t.Error("no required pod anti-affinity across kubernetes.io/hostname for the pods")
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v does not outlast --shutdown-timeout %v", grace, cfg.ShutdownTimeout)
	}

	// The image's user, so that the volume's group (fsGroup) is the node's.
	df, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)`).FindSubmatch(df)
	if m == nil {
		t.Fatal("deploy/docker/Dockerfile has no numeric USER")
	}
	if strconv.Itoa(pod.SecurityContext.RunAsUser) != string(m[1]) || strconv.Itoa(pod.SecurityContext.FSGroup) != string(m[2]) {
		t.Errorf("runAsUser %d / fsGroup %d differ from the image's USER %s:%s", pod.SecurityContext.RunAsUser, pod.SecurityContext.FSGroup, m[1], m[2])
	}
}
