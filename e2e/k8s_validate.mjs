// Validates Kubernetes objects against Kubernetes' own OpenAPI schemas, with
// the models of kubernetes-models (generated from the upstream OpenAPI
// documents) and @kubernetes-models/validate.
//
//   node e2e/k8s_validate.mjs < objects.json
//
// stdin: a JSON array of objects (e2e/test_chart.py converts helm template's
// YAML). stdout: one JSON line per object, {"kind", "name", "ok", "error"};
// exit 0 when every object is valid, 1 when one is not, 2 on bad input or an
// object whose kind has no model (never passed over silently).
import { readFileSync } from "node:fs";

// The module holding a kind's model: core kinds under kubernetes-models/v1,
// group kinds under kubernetes-models/<group>/<version>, prometheus-operator
// kinds in their own package.
function modelPath(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
    if (group === "monitoring.coreos.com")
        return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
    return group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
}

let objects;
try {
    objects = JSON.parse(readFileSync(0, "utf8"));
    if (!Array.isArray(objects)) throw new Error("stdin is not a JSON array");
} catch (e) {
    console.error(`k8s_validate: bad input: ${e.message}`);
    process.exit(2);
}

let status = 0;
for (const obj of objects) {
    const kind = obj?.kind, apiVersion = obj?.apiVersion;
    const name = obj?.metadata?.name ?? "";
    if (typeof kind !== "string" || typeof apiVersion !== "string") {
        console.log(JSON.stringify({ kind, name, ok: false, error: "no apiVersion or kind" }));
        status = Math.max(status, 2);
        continue;
    }
    let Model;
    try {
        Model = (await import(modelPath(apiVersion, kind)))[kind];
        if (!Model) throw new Error("module has no such export");
    } catch (e) {
        console.log(JSON.stringify({ kind, name, ok: false, error: `no model for ${apiVersion} ${kind}: ${e.message}` }));
        status = Math.max(status, 2);
        continue;
    }
    try {
        new Model(obj).validate();
        console.log(JSON.stringify({ kind, name, ok: true }));
    } catch (e) {
        console.log(JSON.stringify({ kind, name, ok: false, error: e.message }));
        status = Math.max(status, 1);
    }
}
process.exit(status);
