// node:http's server, without Node's fetch. An ES module import of node:http reads every export,
// and its WebSocket and MessageEvent getters load undici, Node's whole fetch implementation: about
// 2 MB that run would hold for its lifetime, fetch or not. getBuiltinModule hands over the exports
// without reading them.
export const { createServer } = process.getBuiltinModule('node:http')
