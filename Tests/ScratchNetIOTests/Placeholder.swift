import Testing
@Test func placeholderScratchNetIOTests() { #expect(1 == 1) }
