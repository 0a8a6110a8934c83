/**
 * The most nodes a task, replicas a service, or instances a fleet may ask for. Each becomes a
 * job or instance held in memory at once, so an unbounded count from one request could
 * exhaust the server's heap.
 */
export const maxNodeCount = 1000;
