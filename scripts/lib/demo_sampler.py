#!/usr/bin/env python3
"""Samples the Madrid demo once a second until it is stopped (SIGTERM): hospital-a's daemon
status and every KME's status document, one JSON line per sample into OUT.

    demo_sampler.py OUT QSHIELD A_SOCKET PKI PORT NODE=NS,ADDR,ASKER...

Each line: {"t": unix seconds, "a": the daemon's status, "kmes": {node: KME status}}, each
cut to what report.py draws (see trim_daemon, trim_kme). A status that cannot be read is
left out of that sample (the node may be down)."""
import json, signal, subprocess, sys, time

out, qshield, sock, pki, port = sys.argv[1:6]
nodes = {}
for spec in sys.argv[6:]:
    name, rest = spec.split("=", 1)
    ns, addr, asker = rest.split(",")
    nodes[name] = (ns, addr, asker)
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
KME_STATUS = r'''
import http.client, ssl, sys
addr, port, pki, asker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/{asker}.pem", f"{pki}/{asker}.key")
c = http.client.HTTPSConnection(addr, port, context=ctx, timeout=2)
c.request("GET", "/kme/v1/status")
sys.stdout.write(c.getresponse().read().decode())
'''


CVQKD_KEPT = ("excess_noise_estimate_snu", "transmittance_estimate", "snr",
              "secret_key_rate_bits_per_second", "alarm")


def trim_daemon(doc):
    return {"peers": [{"name": p["name"], "total_bytes_sent": p["total_bytes_sent"],
                       "total_bytes_received": p["total_bytes_received"]}
                      for p in doc.get("peers", [])]}


def trim_kme(doc):
    links = []
    for l in doc["links"]:
        c = l.get("cvqkd")
        links.append({"peer": l["peer"], "role": l["role"], "send_pool_bits": l["send_pool_bits"],
                      "receive_pool_bits": l["receive_pool_bits"],
                      "cvqkd": {k: c.get(k) for k in CVQKD_KEPT} if c else None})
    return {"kme_id": doc["kme_id"], "links": links}


def run(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=3, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return None


with open(out, "a") as f:
    while running:
        t0 = time.time()
        a = run([qshield, "status", "--json", "--socket", sock])
        sample = {"t": t0, "a": trim_daemon(a) if a else None, "kmes": {}}
        for name, (ns, addr, asker) in nodes.items():
            doc = run(["ip", "netns", "exec", ns, "python3", "-c", KME_STATUS, addr, port, pki, asker])
            if doc is not None:
                sample["kmes"][name] = trim_kme(doc)
        f.write(json.dumps(sample) + "\n")
        f.flush()
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
