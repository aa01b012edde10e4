import Testing

@testable import LabCtrlCore

@Suite struct DescriptorLimitTests {
    @Test func twoDescriptorsPerConnectionAfterTheReserveAndThePending() {
        let limit = DescriptorLimit(soft: 20_000, hard: 20_000)
        #expect(limit.connectionCapacity(pending: 256) == (20_000 - 64 - 256) / 2)
        #expect(limit.connectionCap(configured: 4096, pending: 256) == 4096)
        #expect(limit.connectionCap(configured: 50_000, pending: 256) == 9840)
        #expect(limit.connectionCap(configured: 0, pending: 256) == 9840)  // "no cap" still fits the descriptors
    }

    @Test func aTinyLimitStillAllowsOneConnection() {
        #expect(DescriptorLimit(soft: 32, hard: 32).connectionCap(configured: 4096, pending: 256) == 1)
    }

    @Test func raisingLiftsTheSoftLimitToTheHardOne() {
        let limit = DescriptorLimit.raise()
        #expect(limit.soft == limit.hard)
        #expect(DescriptorLimit.raise() == limit)  // idempotent
    }
}
