/**
 * Test contracts, compiled with solc-js at first use and kept in memory for
 * the rest of the process (compiling costs a few hundred ms, a whole jest
 * file's worth of waiting if repeated per test).
 */
import solc from 'solc';

const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// A plain ERC-20 whose decimals are chosen at deployment: 6 like USDT/USDC on Ethereum, 18 like on BNB Smart Chain.
contract TestToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint256 supply) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        totalSupply = supply;
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "allowance");
        if (allowed != type(uint256).max) allowance[from][msg.sender] = allowed - value;
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        require(balanceOf[from] >= value, "balance");
        unchecked { balanceOf[from] -= value; }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}

interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
}

/// Pays out tokens it holds, so deposits arrive from a contract (a hot wallet, a batch payout), not an EOA.
contract Forwarder {
    function forward(IERC20 token, address[] calldata to, uint256[] calldata amounts) external {
        require(to.length == amounts.length, "length");
        for (uint256 i = 0; i < to.length; i++) require(token.transfer(to[i], amounts[i]), "transfer");
    }
}

/// Benchmark only: emits Transfer logs without moving balances, to fill blocks with transfers for little gas.
contract TransferSpray {
    event Transfer(address indexed from, address indexed to, uint256 value);
    uint8 public immutable decimals;

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    /// The same logs as emit Transfer(msg.sender, to[i], value), in assembly: ganache's EVM is slow per opcode.
    function spray(address[] calldata to, uint256 value) external {
        bytes32 sig = Transfer.selector;
        assembly {
            mstore(0, value)
            let end := add(to.offset, mul(to.length, 32))
            for { let p := to.offset } lt(p, end) { p := add(p, 32) } {
                log3(0, 32, sig, caller(), calldataload(p))
            }
        }
    }
}
`;

export type TestContractName = 'TestToken' | 'Forwarder' | 'TransferSpray';

export interface CompiledContract {
  abi: unknown[];
  bytecode: string;
}

interface SolcOutput {
  errors?: Array<{ severity: string; formattedMessage: string }>;
  contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
}

let compiled: Record<TestContractName, CompiledContract> | undefined;

export function testContracts(): Record<TestContractName, CompiledContract> {
  if (compiled) return compiled;
  const input = {
    language: 'Solidity',
    sources: { 'TestContracts.sol': { content: SOURCE } },
    settings: {
      // ganache 7.9 runs Shanghai; newer defaults (Cancun's MCOPY, transient storage) would not deploy.
      evmVersion: 'shanghai',
      // Gas is free here and the optimizer more than doubles compile time inside jest's VM.
      optimizer: { enabled: false },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(`test contracts do not compile:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  const get = (name: TestContractName): CompiledContract => {
    const c = output.contracts['TestContracts.sol']![name]!;
    return { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
  };
  compiled = { TestToken: get('TestToken'), Forwarder: get('Forwarder'), TransferSpray: get('TransferSpray') };
  return compiled;
}
