import type { CoreContext } from '../context.js';
import type { JobProvisioningData } from '../domain/resources.js';
import type { BackendProvider, InstanceAgent } from '../ports/backend-provider.js';

/** Agents by instance, so a pass does not reconnect to an instance every time. */
export interface AgentCache {
  /** The agent of the instance that `data` describes; throws when its backend is unknown. */
  get(instanceKey: string, data: JobProvisioningData): InstanceAgent;
  /** Closes and forgets an instance's agent. */
  drop(instanceKey: string): Promise<void>;
  closeAll(): Promise<void>;
}

/** The provider of a backend type, or a clear error when it is not registered. */
export function providerOf(ctx: CoreContext, type: string): BackendProvider {
  const provider = ctx.providers.get(type);

  if (provider === undefined) {
    throw new Error(`no provider is registered for backend type ${type}`);
  }

  return provider;
}

/** A cache of agents keyed by instance id. */
export function createAgentCache(ctx: CoreContext): AgentCache {
  const agents = new Map<string, InstanceAgent>();

  return {
    get(instanceKey, data) {
      let agent = agents.get(instanceKey);

      if (agent === undefined) {
        agent = providerOf(ctx, data.backend).agent(data);
        agents.set(instanceKey, agent);
      }

      return agent;
    },
    async drop(instanceKey) {
      const agent = agents.get(instanceKey);
      agents.delete(instanceKey);
      await agent?.close?.().catch(() => undefined);
    },
    async closeAll() {
      const all = [...agents.values()];
      agents.clear();
      await Promise.allSettled(all.map((agent) => agent.close?.()));
    },
  };
}
