/**
 * Inventory and membership: hosts, workloads (reported by agents, tagged by
 * administrators), groups and IP sets.
 */
import { GroupRes, HostCreate, HostRes, IpSetRes, WorkloadList, WorkloadRes, WorkloadResponse } from '../schemas';
import { ManagerService, toResponse } from '../service';
import { Api, registerCrud } from './crud';

export function registerInventoryRoutes(api: Api, service: ManagerService): void {
  registerCrud(api, service, { path: '/hosts', kind: 'host', tag: 'hosts', create: HostCreate, update: HostRes.update, response: HostRes.response, list: HostRes.list });
  registerCrud(api, service, {
    path: '/workloads',
    kind: 'workload',
    tag: 'workloads',
    create: WorkloadRes.create,
    update: WorkloadRes.update,
    response: WorkloadResponse,
    list: WorkloadList,
    out: (o) => ({ ...toResponse(o), reported_tags: o.body.reported_tags ?? [] }),
  });
  registerCrud(api, service, { path: '/groups', kind: 'group', tag: 'groups', ...GroupRes });
  registerCrud(api, service, { path: '/ip-sets', kind: 'ip_set', tag: 'ip-sets', ...IpSetRes });
}
