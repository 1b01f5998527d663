// The capture reader lives with the demo, which uses it too (ts/demo/pcap.ts).
export * from '../../ts/demo/pcap';
