#!/usr/bin/env python3
"""Writes devcluster/fields_table.c from the generated.proto files of
kubernetes/api (core/v1, apps/v1, batch/v1, rbac/v1, policy/v1, networking/v1)
and kubernetes/apimachinery (pkg/apis/meta/v1), given on the command line:

    devcluster/tools/gen_fields.py core.proto apps.proto ... > devcluster/fields_table.c

Only message, field and type names are read (facts about the API).
"""
import re, sys
files = sys.argv[1:]
msgs = {}
for f in files:
    cur = None
    for line in open(f):
        line = line.strip()
        m = re.match(r'^message (\w+) \{', line)
        if m:
            cur = m.group(1); msgs.setdefault(cur, {}); continue
        if line == '}':
            cur = None; continue
        if not cur or line.startswith('//'):
            continue
        m = re.match(r'^map<\s*string,\s*([\w.]+)\s*> (\w+) = \d+;', line)
        if m:
            msgs[cur][m.group(2)] = (m.group(1).split('.')[-1], 'map'); continue
        m = re.match(r'^(optional|repeated) ([\w.]+) (\w+) = \d+;', line)
        if m:
            msgs[cur][m.group(3)] = (m.group(2).split('.')[-1], 'list' if m.group(1) == 'repeated' else 'one')
# Go structs embedded with `json:",inline"`: their fields appear in the parent
INLINE = {('ConfigMapEnvSource', 'localObjectReference'), ('ConfigMapKeySelector', 'localObjectReference'),
          ('ConfigMapProjection', 'localObjectReference'), ('ConfigMapVolumeSource', 'localObjectReference'),
          ('SecretEnvSource', 'localObjectReference'), ('SecretKeySelector', 'localObjectReference'),
          ('SecretProjection', 'localObjectReference'), ('EphemeralContainer', 'ephemeralContainerCommon'),
          ('PersistentVolumeSpec', 'persistentVolumeSource'), ('Volume', 'volumeSource'),
          ('Probe', 'handler'), ('IngressRule', 'ingressRuleValue')}
changed = True
while changed:
    changed = False
    for (parent, field) in INLINE:
        if parent in msgs and field in msgs[parent]:
            child = msgs[parent].pop(field)[0]
            for k, v in msgs.get(child, {}).items():
                msgs[parent].setdefault(k, v)
            changed = True
LEAF = {'Time', 'MicroTime', 'Quantity', 'IntOrString', 'RawExtension', 'FieldsV1', 'Duration',
        'string', 'int32', 'int64', 'bool', 'bytes', 'double', 'float'}
# JSON names that differ from proto names
RENAME = {('BoundObjectReference', 'uID'): 'uid'}
roots = {
  'Pod': 'Pod', 'Deployment': 'Deployment', 'StatefulSet': 'StatefulSet', 'ReplicaSet': 'ReplicaSet',
  'DaemonSet': 'DaemonSet', 'Job': 'Job', 'CronJob': 'CronJob', 'Service': 'Service',
  'ConfigMap': 'ConfigMap', 'Secret': 'Secret', 'ServiceAccount': 'ServiceAccount',
  'PersistentVolumeClaim': 'PersistentVolumeClaim', 'Namespace': 'Namespace', 'Endpoints': 'Endpoints',
  'Role': 'Role', 'ClusterRole': 'ClusterRole', 'RoleBinding': 'RoleBinding',
  'ClusterRoleBinding': 'ClusterRoleBinding', 'PodDisruptionBudget': 'PodDisruptionBudget',
  'NetworkPolicy': 'NetworkPolicy', 'Ingress': 'Ingress',
}
need, todo = set(), list(roots.values())
while todo:
    t = todo.pop()
    if t in need or t in LEAF or t not in msgs:
        continue
    need.add(t)
    for fname, (ftype, kind) in msgs[t].items():
        if fname == 'status' and t in roots.values():
            continue  # status is not checked
        todo.append(ftype)
out = []
out.append('/*\n * fields_table.c: the JSON field names of the built-in kinds devcluster checks\n'
           ' * for unknown fields (see fields.h). Generated from the message, field and\n'
           ' * type names of the generated.proto files of kubernetes/api (core/v1,\n'
           ' * apps/v1, batch/v1, rbac/v1, policy/v1, networking/v1) and\n'
           ' * kubernetes/apimachinery (meta/v1); newer than 1.32, so a superset of\n'
           ' * what a 1.32 server knows. A message not listed is not checked.\n'
           ' * Written by devcluster/tools/gen_fields.py; do not edit.\n */\n'
           '#include "fields.h"\n\n#include <stddef.h>\n\n')
out.append('const dc_field dc_fields[] = {\n')
n = 0
for t in sorted(need):
    for fname, (ftype, kind) in sorted(msgs[t].items()):
        jname = RENAME.get((t, fname), fname)
        child = ftype if (ftype in need and not (fname == 'status' and t in roots.values())) else None
        out.append('    {"%s", "%s", %s, %s},\n' % (t, jname, '"%s"' % child if child else 'NULL',
                   {'map': 'DC_FIELD_MAP', 'list': 'DC_FIELD_LIST', 'one': 'DC_FIELD_ONE'}[kind]))
        n += 1
out.append('};\n\nconst size_t dc_nfields = sizeof dc_fields / sizeof dc_fields[0];\n\n')
out.append('const dc_field_root dc_field_roots[] = {\n')
for kind, msg in sorted(roots.items()):
    if msg in need:
        out.append('    {"%s", "%s"},\n' % (kind, msg))
out.append('};\n\nconst size_t dc_nfield_roots = sizeof dc_field_roots / sizeof dc_field_roots[0];\n')
sys.stdout.write(''.join(out))
sys.stderr.write(f"{len(need)} messages, {n} fields\n")
