// Command vcportal-ingress is the ingress controller of the embedded host cluster
// (localkube): Caddy, in this process, serving the Ingresses of the IngressClasses that
// name this controller, reconfigured from the API as Ingresses, Services and TLS
// Secrets change. It writes its address into the status of the Ingresses it serves.
//
// Routes go to a Service's ClusterIP (kube-proxy picks the pod). Path types follow the
// Ingress API: Exact, and Prefix by path element ("/a" matches "/a" and "/a/b", not
// "/ab"); ImplementationSpecific is Prefix. Longer paths win; a request matching no
// route is answered 404. A TLS entry's Secret (kubernetes.io/tls, same namespace)
// serves its hosts on the HTTPS listener, chosen by SNI.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const defaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"

type options struct {
	controller, httpAddr, httpsAddr, publishIP string
}

func main() {
	var opts options
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file; in a pod, its ServiceAccount")
	health := flag.String("health", ":10254", "address of /healthz: 200 once a configuration is loaded")
	flag.StringVar(&opts.controller, "controller", "vcportal.io/ingress", "the controller name IngressClasses give")
	flag.StringVar(&opts.httpAddr, "http", ":8080", "HTTP listen address")
	flag.StringVar(&opts.httpsAddr, "https", ":8443", "HTTPS listen address")
	flag.StringVar(&opts.publishIP, "publish-ip", os.Getenv("PUBLISH_IP"), "the address written into Ingress status")
	flag.Parse()

	config, err := restConfig(*kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	var ready atomic.Bool
	go serveHealth(*health, &ready)
	run(context.Background(), client, opts, &ready)
}

func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", path)
}

func serveHealth(addr string, ready *atomic.Bool) {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "no configuration loaded yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe(addr, nil))
}

// cluster is what the controller reads from the API, through informers' caches.
type cluster struct {
	ingresses cache.SharedIndexInformer
	classes   cache.SharedIndexInformer
	services  listers.ServiceLister
	secrets   listers.SecretLister
}

func run(ctx context.Context, client kubernetes.Interface, opts options, ready *atomic.Bool) {
	changed := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(changed) },
		UpdateFunc: func(any, any) { poke(changed) },
		DeleteFunc: func(any) { poke(changed) },
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	tlsOnly := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(
		func(o *metav1.ListOptions) { o.FieldSelector = "type=" + string(corev1.SecretTypeTLS) }))
	c := cluster{
		ingresses: factory.Networking().V1().Ingresses().Informer(),
		classes:   factory.Networking().V1().IngressClasses().Informer(),
		services:  factory.Core().V1().Services().Lister(),
		secrets:   tlsOnly.Core().V1().Secrets().Lister(),
	}
	for _, informer := range []cache.SharedIndexInformer{c.ingresses, c.classes,
		factory.Core().V1().Services().Informer(), tlsOnly.Core().V1().Secrets().Informer()} {
		if _, err := informer.AddEventHandler(notify); err != nil {
			log.Fatalf("informer: %v", err)
		}
	}
	factory.Start(ctx.Done())
	tlsOnly.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	tlsOnly.WaitForCacheSync(ctx.Done())
	poke(changed)

	var loaded []byte
	for range changed {
		time.Sleep(100 * time.Millisecond) // let a burst of changes settle into one reload
		served := c.served(opts.controller)
		config, err := json.Marshal(caddyConfig(opts, c.routes(served), c.certificates(served)))
		if err != nil {
			log.Fatalf("configuration: %v", err)
		}
		if !bytes.Equal(config, loaded) {
			if err := caddy.Load(config, false); err != nil {
				log.Printf("loading the configuration failed: %v", err)
				continue
			}
			loaded = config
			ready.Store(true)
			log.Printf("serving %d Ingresses", len(served))
		}
		publish(ctx, client, served, opts.publishIP)
	}
}

func poke(changed chan struct{}) {
	select {
	case changed <- struct{}{}:
	default:
	}
}

// served: the Ingresses of a class naming this controller, or of none when such a
// class is the default.
func (c cluster) served(controller string) []*networkingv1.Ingress {
	ours, defaultOurs := map[string]bool{}, false
	for _, obj := range c.classes.GetStore().List() {
		class := obj.(*networkingv1.IngressClass)
		if class.Spec.Controller == controller {
			ours[class.Name] = true
			defaultOurs = defaultOurs || class.Annotations[defaultClassAnnotation] == "true"
		}
	}
	var served []*networkingv1.Ingress
	for _, obj := range c.ingresses.GetStore().List() {
		ing := obj.(*networkingv1.Ingress)
		if name := ing.Spec.IngressClassName; (name == nil && defaultOurs) || (name != nil && ours[*name]) {
			served = append(served, ing)
		}
	}
	sort.Slice(served, func(i, j int) bool { return key(served[i]) < key(served[j]) })
	return served
}

func key(ing *networkingv1.Ingress) string { return ing.Namespace + "/" + ing.Name }

type route struct {
	host, path string
	exact      bool
	dial       string
}

func (c cluster) routes(served []*networkingv1.Ingress) []route {
	var routes []route
	for _, ing := range served {
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				dial, err := c.upstream(ing.Namespace, path.Backend)
				if err != nil {
					log.Printf("%s: %s%s: %v", key(ing), rule.Host, path.Path, err)
					continue
				}
				exact := path.PathType != nil && *path.PathType == networkingv1.PathTypeExact
				routes = append(routes, route{host: rule.Host, path: path.Path, exact: exact, dial: dial})
			}
		}
	}
	// Named hosts before host-less rules, then the longest path, Exact before Prefix.
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if (a.host == "") != (b.host == "") {
			return b.host == ""
		}
		if len(a.path) != len(b.path) {
			return len(a.path) > len(b.path)
		}
		return a.exact && !b.exact
	})
	return routes
}

func (c cluster) upstream(namespace string, backend networkingv1.IngressBackend) (string, error) {
	if backend.Service == nil {
		return "", fmt.Errorf("only Service backends are served")
	}
	svc, err := c.services.Services(namespace).Get(backend.Service.Name)
	if err != nil {
		return "", err
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", fmt.Errorf("Service %s has no ClusterIP", svc.Name)
	}
	port := backend.Service.Port.Number
	for _, p := range svc.Spec.Ports {
		if port == 0 && p.Name == backend.Service.Port.Name {
			port = p.Port
		}
	}
	if port == 0 {
		return "", fmt.Errorf("Service %s has no port %q", svc.Name, backend.Service.Port.Name)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port))), nil
}

type certificate struct {
	tag, cert, key string
	hosts          []string
}

func (c cluster) certificates(served []*networkingv1.Ingress) []certificate {
	var certs []certificate
	for _, ing := range served {
		for _, tls := range ing.Spec.TLS {
			if tls.SecretName == "" {
				continue
			}
			secret, err := c.secrets.Secrets(ing.Namespace).Get(tls.SecretName)
			if err != nil {
				log.Printf("%s: TLS Secret %s: %v", key(ing), tls.SecretName, err)
				continue
			}
			hosts := tls.Hosts
			if len(hosts) == 0 {
				for _, rule := range ing.Spec.Rules {
					hosts = append(hosts, rule.Host)
				}
			}
			certs = append(certs, certificate{tag: ing.Namespace + "/" + tls.SecretName, hosts: hosts,
				cert: string(secret.Data[corev1.TLSCertKey]), key: string(secret.Data[corev1.TLSPrivateKeyKey])})
		}
	}
	return certs
}

type object = map[string]any

func caddyConfig(opts options, routes []route, certs []certificate) object {
	handlers := make([]any, 0, len(routes)+1)
	for _, r := range routes {
		match := object{"path": pathPatterns(r.path, r.exact)}
		if r.host != "" {
			match["host"] = []string{r.host}
		}
		handlers = append(handlers, object{
			"match":    []any{match},
			"handle":   []any{object{"handler": "reverse_proxy", "upstreams": []any{object{"dial": r.dial}}}},
			"terminal": true,
		})
	}
	handlers = append(handlers, object{"handle": []any{object{"handler": "static_response", "status_code": 404,
		"body": "no Ingress serves this host and path\n"}}})
	servers := object{"http": object{"listen": []string{opts.httpAddr}, "routes": handlers,
		"automatic_https": object{"disable": true}}}
	apps := object{"http": object{"servers": servers}}
	if len(certs) > 0 {
		var pems, policies []any
		for _, cert := range certs {
			pems = append(pems, object{"certificate": cert.cert, "key": cert.key, "tags": []string{cert.tag}})
			policies = append(policies, object{"match": object{"sni": cert.hosts},
				"certificate_selection": object{"any_tag": []string{cert.tag}}})
		}
		servers["https"] = object{"listen": []string{opts.httpsAddr}, "routes": handlers,
			"tls_connection_policies": policies, "automatic_https": object{"disable": true}}
		apps["tls"] = object{"certificates": object{"load_pem": pems}}
	}
	return object{
		"admin":   object{"disabled": true},
		"logging": object{"logs": object{"default": object{"level": "WARN"}}},
		"storage": object{"module": "file_system", "root": os.TempDir() + "/caddy"},
		"apps":    apps,
	}
}

// pathPatterns: Caddy path matchers for an Ingress path.
func pathPatterns(path string, exact bool) []string {
	if exact {
		return []string{path}
	}
	trimmed := strings.TrimRight(path, "/")
	if trimmed == "" {
		return []string{"/*"}
	}
	return []string{trimmed, trimmed + "/*"}
}

func publish(ctx context.Context, client kubernetes.Interface, served []*networkingv1.Ingress, ip string) {
	if ip == "" {
		return
	}
	want := []networkingv1.IngressLoadBalancerIngress{{IP: ip}}
	for _, ing := range served {
		have := ing.Status.LoadBalancer.Ingress
		if len(have) == 1 && have[0].IP == ip && have[0].Hostname == "" {
			continue
		}
		updated := ing.DeepCopy()
		updated.Status.LoadBalancer.Ingress = want
		if _, err := client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, updated,
			metav1.UpdateOptions{}); err != nil {
			log.Printf("%s: status: %v", key(ing), err)
		}
	}
}
